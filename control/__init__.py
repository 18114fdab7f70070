"""firedamp control room: source (MQTT) → messages → store (SQLite) → web page, for every board of every edge."""
