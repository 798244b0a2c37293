"""`evalkit report`: a self-contained HTML page of one or more runs."""

from evalkit.report.build import render_report, write_report

__all__ = ["render_report", "write_report"]
