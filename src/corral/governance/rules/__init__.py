"""Pure rule evaluation, one module per area; compiled by ``governance.snapshot``."""
