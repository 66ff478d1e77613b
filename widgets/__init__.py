"""DeepLog Workbench widgets: ipywidgets + plotly views over a :class:`workbench` object."""

__all__: list[str] = []
