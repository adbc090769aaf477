"""The topic model's Serve application, as it lives in the private repository."""

try:  # with ray[serve] installed this is a real Serve deployment
    from ray import serve
except ImportError:  # plain `ray` (no Serve web stack) or no Ray at all: the class itself
    serve = None


class TopicModel:
    def __init__(self, n_topics: int = 3):
        self.n_topics = n_topics

    def __call__(self, text: str) -> int:
        return sum(map(ord, text)) % self.n_topics


deployment = serve.deployment(TopicModel).bind() if serve is not None else TopicModel
