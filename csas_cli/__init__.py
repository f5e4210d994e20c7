"""csas: LoRA/QLoRA fine-tuning of English<->French translation models on a domain's own translations."""

__version__ = "0.1.0"
