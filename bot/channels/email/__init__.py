"""The email channel: render (MJML + Jinja2), MIME, headers, SMTP, subscribers, tokens."""
