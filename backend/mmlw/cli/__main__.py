from mmlw.cli import main

main()
