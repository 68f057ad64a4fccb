from edgelite.cli import main

main()
