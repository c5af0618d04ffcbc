"""The synthetic data generator: drawn faces whose expressions follow known valence/arousal,
written in the real datasets' layouts (Aff-Wild2, full-frame videos, CK+, CK+48, JAFFE) so that
the demo and the tests exercise the real readers without shipping any real dataset."""

from affecttrack.synth.generator import SynthConfig, synthesize

__all__ = ["SynthConfig", "synthesize"]
