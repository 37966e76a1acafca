# train/trainer.mk: the DPO trainer (backward passes, losses, AdamW, checkpoints) and dpo-train.
