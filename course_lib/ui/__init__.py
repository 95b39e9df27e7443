"""What a student sees and touches: figures, the widget control panel, the results cache."""
