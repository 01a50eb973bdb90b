"""Jobs: what a command runs end to end (the search job, retraining, the up-front run validation).

The top of the library: a job may use training, search, fitness and the trackers; nothing below
imports a job.
"""
