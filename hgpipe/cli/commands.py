"""Registers every command module with the group (one import per command)."""
from hgpipe.cli import main
from hgpipe.cli.bench_cmd import bench_command
from hgpipe.cli.export_cmd import export_command
from hgpipe.cli.import_weights_cmd import import_weights_command
from hgpipe.cli.inspect_cmd import inspect_command
from hgpipe.cli.pck_cmd import pck_command
from hgpipe.cli.predict_cmd import predict_command
from hgpipe.cli.prepare_cmd import prepare_command
from hgpipe.cli.train_cmd import train_command

for _command in (prepare_command, inspect_command, train_command, pck_command,
                 predict_command, export_command, import_weights_command, bench_command):
    main.add_command(_command)
