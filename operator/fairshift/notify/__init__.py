"""Decision notifications: webhooks in a generic JSON format or Slack's."""
