"""Puzzle NAS (METHODS §2) and FFN Fusion (§1.2).

decilm/       the nemotron-nas format: config + modeling, copied into every saved child
format        Llama -> DeciLM (identity), save with auto_map, Auto-class registration
parent        the trained tiny NAS parent          data         token batches, held-out prompts
space         per-layer attention / FFN variants   init         training-free initialisers
activations   parent activations, channel contributions
assemble      sub-block store, layers and children from sub-block weights
bld           blockwise local distillation (Ray tasks, resumable)
scoring       replace-1-block KL / LM loss         costs        vLLM-measured times, analytic memory
library       Puzzle-layout block library JSON     mip          HiGHS grouped-knapsack search
search        library + budget -> MIPs, batch sweep
gkd           global KD (cosine on hidden states + KL on logits)
fusion        FFN Fusion                           accuracy     held-out math accuracy in vLLM
pipeline      the whole run (recipes/puzzle_nas.py)
"""
