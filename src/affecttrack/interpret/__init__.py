"""What the networks look at: pixel saliency of the frame CNN, per-class averages, first-layer
filters, and which past frames drive the sequence network (`affecttrack explain`)."""
