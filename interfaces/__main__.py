from interfaces.cli import cli

cli()
