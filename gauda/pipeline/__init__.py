"""The demo pipeline: every stage of the paper run in order on one dataset, each stage reused when its
configuration and inputs are unchanged, and a report a person reads (``report.html``, ``results.json``).

``config`` holds the demo's own options, ``stages`` what each stage does, ``runner`` the order, reuse
and timing, ``report`` the HTML page. Nothing is imported here, so that ``gauda.presets`` can import
``gauda.pipeline.config`` without importing the stages.
"""
