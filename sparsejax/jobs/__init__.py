"""What each launcher runs, as library functions: presets, checked settings and one ``run``.

A launcher under ``experiments/`` only defines its absl flags, reads them into a mapping and
calls its job here (``settings(values)`` then ``run(settings, args)``); tests call the same
functions in-process. Presets are defined once, in the job module (``PRESETS``), and the
launcher's ``--help`` lists them.
"""
