"""The application: the stages composed in one process (`InProcessAnalyzer`) and the `emotion-analyzer`
command line, which runs them here or sends the file to a server through the client.
"""
