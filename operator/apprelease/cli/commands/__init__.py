"""One module per `apprelease` command, each a plain function that `apprelease.cli.main` registers."""
