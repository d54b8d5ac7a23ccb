"""Converters: upstream file -> reader for its format -> the model's name map -> canonical ``.safetensors``."""
