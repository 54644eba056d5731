"""GRPO through the evalctl endpoint on TRL's `GRPOTrainer`.

TRL owns the algorithm: advantages, loss types, the clipped objective, KL, micro-batching,
checkpoints, resume, accelerate/DeepSpeed/FSDP. What is ours is the seam to the endpoint:

sync.py       push the policy adapter to the server when it changed (main process; the others wait)
rollout.py    TRL's `rollout_func`: G completions per prompt from exactly that version, with vLLM's
              token ids and sampling log-probs (the importance-sampling correction needs them)
rewards.py    the task's scorers and the judge as TRL reward functions
trainer.py    `EndpointGRPOTrainer`: GRPOTrainer with TRL's vLLM correction switched on for these rollouts
telemetry.py  metrics.jsonl / TensorBoard lines: TRL's metrics plus phase times and the adapter version
run.py        `run_grpo`: settings -> GRPOConfig, train, resume, in-loop eval, final and best push
"""
