"""After go-live: one monitoring folder per deployed model (its store, reference profile, alarms, outcomes and
feedback) and the change-control plan under which the model may be updated. Above workflows, below the services.

Modules: ``folder`` (init_folder, open_folder, Monitor: the API), ``store`` (the SQLAlchemy tables and
MonitorError), ``reference`` (the validation profile of a run or export), ``signals`` (charts, window tests and
their false-alarm design), ``recorder`` (MonitorRecorder, the group-commit recorder beside the predictor),
``outcomes`` (confirmed labels), ``tallies`` (what status counts in the database), ``summary`` (status and
chart data) and ``report`` (the surveillance report).
"""
