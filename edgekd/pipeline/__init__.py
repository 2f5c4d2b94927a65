"""The staged pipeline: stage base class (``stage``), run folder manifest and fingerprints
(``manifest``, ``runfolder``), the runner (``runner``) and the report's content (``report_data``)."""
