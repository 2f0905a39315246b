"""`dexforge chat`: a conversation with a tool-calling assistant that starts, shows, amends, approves,
explains and retrains runs (agent: the graph and its session; tools: what it can do; offline: the rules
it follows without a model; views: what a run folder says about a run)."""
