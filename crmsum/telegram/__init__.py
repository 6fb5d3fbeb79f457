"""Talking to Telegram: the Bot API client (`client`), Telegram HTML (`markup`) and the one
send-once routine every delivery uses (`send_once`)."""
