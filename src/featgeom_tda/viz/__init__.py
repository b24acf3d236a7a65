"""Drawing: matplotlib figures (object API, no global backend), plotly pages and HTML writers."""
