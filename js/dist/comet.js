/* cometbox client: placeholder until the client build lands. */
