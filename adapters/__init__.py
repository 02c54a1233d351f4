"""One package per data provider; each exposes ``adapter`` (an ``app.adapter.Adapter``)."""
