"""Torch building blocks: the DSL's ops as modules (`blocks`) and DiMP's classifier core (`dimp`).

Below the head kinds, the space and every model, so all of them build from the same pieces; this
layer imports only the DSL vocabulary.
"""
