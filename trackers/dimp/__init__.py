"""The DiMP baseline tracker: its network (`model`), tracking (`tracker`), training (`train`), spec and
baseline section. The discriminative model predictor itself lives in `nas.ops.dimp`, shared with the
searchable `dimp` head kind."""
