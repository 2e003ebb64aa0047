"""`tocsin demo`: a simulated shop (traffic, a nightly job, flapping dependencies) watched by an embedded monitor.

`command.py` is the click command, `config.py` the demo's config, `shop.py` the traffic model, `history.py`
the minutes seeded before the start, `nightly.py` the workflow and `live.py` the plugin that runs it all.
"""
