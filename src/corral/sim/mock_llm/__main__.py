"""``python -m corral.sim.mock_llm --port N``."""

from corral.sim.mock_llm.app import main

main()
