"""kessai's test suite: unit, integration (throwaway broker), end-to-end."""
