"""The core every lesson builds on: data, models, the training loop, schedules, claims and
verdicts, experiment bookkeeping. Nothing here imports a lesson, the UI or the tools."""
