"""SPEC-align as one concern: an align run (:mod:`.run`: what is aligned to what, the split),
its two modes (:mod:`.adapter`, :mod:`.finetune`), the aligned entry and the held-out views both
modes end with (:mod:`.views`), and the label probes (:mod:`.probes`). The flow
(:mod:`speclens.flows.align`) picks a mode's steps from a table."""
