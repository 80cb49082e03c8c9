"""Fleet management: the runtimes an org registers and the agents defined on them."""
