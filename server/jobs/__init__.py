"""Fine-tuning jobs behind OpenAI's Files and Fine-tuning APIs.

- `store`: one SQLite file (WAL) holding files, jobs, events and checkpoints; the
  gateway and the training workers both write to it, each through short transactions.
- `files`: upload validation with the trainers' own loaders (Alpaca, ShareGPT,
  messages, prompt/completion, preference pairs).
- `spec`: a job request resolved into the trainer settings the worker runs (`rft_spec`:
  reinforcement hyperparameters onto GRPO, the grader checked against what is served).
- `worker`: `python -m server.jobs.worker DB JOB_ID`, one process per job, runs TRL
  SFT or DPO and writes metrics events and resumable checkpoints; `rft`: reinforcement
  jobs, GRPO through this gateway with the job's grader as the reward.
- `scheduler`: an asyncio task in the gateway: validates files, starts workers (at
  most `max_concurrent_jobs`), hot-loads the adapter on success, and recovers jobs
  after a restart (a running job resumes from its last checkpoint or fails clearly).
"""
