"""Inference building blocks: model bundles, ONNX export and streaming sequence prediction."""
