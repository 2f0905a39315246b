"""Reward programs and their sandbox, PPO training, planned and scripted controllers, datasets (DESIGN.md)."""
