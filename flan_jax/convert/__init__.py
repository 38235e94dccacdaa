"""Checkpoint importers (Hugging Face T5/Flan-T5/mT5 and Llama)."""
