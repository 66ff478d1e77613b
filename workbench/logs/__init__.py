"""Raw logs to entries.

``reading`` (plain or gzip lines), ``formats`` and ``masks`` (how a line splits and which values
are masked), ``autoformat`` (a format chosen on the first lines), ``parser`` (:class:`LogParser`,
which owns its session rule), ``template_keys``, ``template_refine`` and ``word_stats`` (Drain's
clusters refined into log keys), ``timestamps``, ``sessions`` (session rules and the one grouping
of entries into sessions), ``summary`` (what a parse reports), ``parser_state`` (the parser's
plain-JSON state) and ``parse_command`` (``deeplog-workbench parse``)."""
