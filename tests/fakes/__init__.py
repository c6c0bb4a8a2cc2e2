"""In-process fake tracker servers (Jira, GitHub) that the tests and benchmarks talk to over real HTTP."""
