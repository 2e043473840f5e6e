"""seqlab.tune: the architecture + hyperparameter search of the RNN scorer, and its comparison report.

Pure modules (no Ray): ``config`` (TuneJobConfig and the search space), ``data`` (corpus -> labeled rows
per split -> encoded for training), ``baselines`` (mean and TF-IDF + ridge, fit in the same run),
``report`` (the seed's comparison table, learning curves, Optuna parameter importances).
Ray at the edges: ``search`` (Tuner with OptunaSearch and ASHA, one trial = one training run, restore,
best-trial export), ``job`` (the whole stage: data -> search -> evaluate -> ``best/`` + ``report/``).
CLI verb: ``cli_tune`` (``seqlab tune``).
"""
