"""Statements and confirmations, notifications, audit attestations and operator reports
(issue 16): plain functions over the platform's record, called by the API and the pages."""
