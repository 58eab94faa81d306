"""Workflows that chain the layers below into what a command does: train, evaluate (predict + score), score a
file, compare with readers, explain, fit the out-of-distribution guard, predict into files, cross-validate,
reproduce a study's grid, track runs in MLflow and run jobs through submitit."""
