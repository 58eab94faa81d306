"""After go-live: one monitoring folder per deployed model (its store, reference profile, alarms, outcomes and
feedback) and the change-control plan under which the model may be updated. Above workflows, below the services."""
