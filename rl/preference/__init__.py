"""The preference stage: DPO / IPO / SimPO / RPO losses, pair data, offline and online
(iterative) training on the GRPO policy workers, and interleaving with GRPO."""
