"""The shop server of seed 003 (販売店サーバ): order intake, the 1st settlement request, the
payment-processing request to the user's device, and the verified settlement result.

``agent`` is the worker (faust shell); ``pricing``, ``scenario`` and ``results`` are pure;
``orders`` is the shop's order DB ([0024]); ``catalogue`` reads what each shop sells from its
key file; ``statement`` is what the 1st request states (honest here; the simulator's
``sim/shop.py`` injects a dishonest one for demonstrations).
"""
