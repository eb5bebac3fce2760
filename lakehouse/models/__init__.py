"""SQL models: spec, parser, graph, what a partition reads, runs, checks, change detection, staleness."""
