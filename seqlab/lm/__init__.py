"""seqlab.lm: the GPT-2 generator — tokenizer training, model build/load, Ray Train loop, generation, evaluation.

Pure modules (no Ray): ``config`` (FinetuneJobConfig), ``tokenizer``, ``model``, ``data`` (packing),
``sampling`` (the next-token rules), ``generate`` (decoding),
``generator`` (text in, candidates out), ``evaluate`` (perplexity, BLEU, distinct-n), ``report``.
Ray at the edges: ``train`` (TorchTrainer + Ray Data), ``finetune`` (the whole stage).
CLI verbs: ``cli_finetune`` (``seqlab finetune``), ``cli_generate`` (``seqlab generate``).
"""
