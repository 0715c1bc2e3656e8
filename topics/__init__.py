"""The topic catalogue: the single source of truth for every topic on the kessai bus."""

from topics.catalogue import CATALOGUE, TopicSpec, by_name, readable_by

__all__ = ["CATALOGUE", "TopicSpec", "by_name", "readable_by"]
