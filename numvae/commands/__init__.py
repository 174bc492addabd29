"""The ``numvae`` command's sub-commands, one module each.

Every module has ``add_parser(commands)`` (its argparse sub-parser) and ``run(args)``;
``numvae.commands.cli`` lists them. The library never imports this package: the command line
owns the commands.
"""
