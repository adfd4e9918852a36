"""User accounts: records, passwords and their policy, usernames, bulk import, and the views the API returns."""
