from mmlw.cli import run

run()
